//! The transport: one TLS websocket per target (`/api` or `/model/<uuid>/api`), with
//! Juju's JSON-RPC envelope, many requests in flight matched by `request-id`, login,
//! keepalive pings, a timeout on every call and automatic reconnection.
//!
//! A [`Connection`] owns a supervisor task. The supervisor dials, logs in and publishes
//! the live [`Session`]; when the session dies (the server closed it, a ping failed) it
//! dials again with capped exponential backoff and logs in again. Calls wait for a live
//! session within their own timeout. A call whose session dies before the answer
//! arrives fails with [`Error::ConnectionLost`] and is not repeated: the caller decides,
//! because Juju may have applied it.
//!
//! Nothing here logs frame contents: requests carry passwords and secret values.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::error::{ApiError, Error, Result};
use super::wire;

/// The server name Juju's own client verifies, whatever address it dials.
pub const JUJU_SERVER_NAME: &str = "juju-apiserver";

/// The Juju version this client presents itself as in Login.
const CLIENT_VERSION: &str = "3.6.14";

/// A password. `Debug` never shows it; it is wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Capped exponential backoff between reconnection attempts.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before attempt number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(5),
        }
    }
}

/// How to reach and log in to a Juju controller.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Controller API addresses as `host:port`, tried in order.
    pub endpoints: Vec<String>,
    /// The controller's CA certificate (PEM). Only this CA is trusted.
    pub ca_cert: String,
    /// Local Juju user name (without `user-`).
    pub username: String,
    /// The user's password.
    pub password: Password,
    /// Longest a call may take, waiting for a connection included.
    pub call_timeout: Duration,
    /// Longest a dial + TLS + websocket handshake + login may take.
    pub connect_timeout: Duration,
    /// Interval of `Pinger.Ping` keepalives; a failed ping drops the connection. A
    /// connection that received an answer within the interval is evidently alive and
    /// is not pinged.
    pub ping_interval: Duration,
    /// Backoff between reconnection attempts.
    pub backoff: Backoff,
    /// When set, no call is sent once the fence has closed (see [`Fence`]).
    pub fence: Option<Fence>,
}

/// A time after which the client sends no call: a replica that leads by a Lease sets it
/// to when it must stop at the latest and moves it on with each renewal, so a process
/// that was frozen or starved past it cannot reach Juju before it notices it no longer
/// leads. Calls then fail with [`Error::Fenced`].
///
/// The time a suspended machine spent asleep counts (`CLOCK_BOOTTIME`): tokio's clock
/// (`CLOCK_MONOTONIC`) stops during a suspend, so a leader whose machine slept past
/// its Lease would otherwise wake with its fence still open.
#[derive(Clone, Debug)]
pub struct Fence(Arc<Mutex<Deadline>>);

#[derive(Debug)]
struct Deadline {
    until: Instant,
    /// [`suspended`] when `until` was set: what the machine sleeps after it counts.
    suspended: Duration,
}

impl Fence {
    /// A fence open until `until`.
    pub fn new(until: Instant) -> Self {
        Self(Arc::new(Mutex::new(Deadline {
            until,
            suspended: suspended(),
        })))
    }

    /// Moves the time the fence closes to `until`.
    pub fn open_until(&self, until: Instant) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Deadline {
            until,
            suspended: suspended(),
        };
    }

    /// Whether calls may be sent now.
    pub fn is_open(&self) -> bool {
        let deadline = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let slept = suspended().saturating_sub(deadline.suspended);
        Instant::now() + slept < deadline.until
    }
}

/// How long the machine has been suspended since this process first asked:
/// `CLOCK_BOOTTIME` counts a suspend, `CLOCK_MONOTONIC` (tokio's clock) does not, so
/// their difference grows by it. Differences under 10 ms are not a suspend (the two
/// clocks are read one after the other). Zero where there is no `CLOCK_BOOTTIME`.
fn suspended() -> Duration {
    static AT_START: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    let ahead = boottime_ahead();
    let slept = ahead.saturating_sub(*AT_START.get_or_init(|| ahead));
    #[cfg(test)]
    let slept = slept + SLEPT.get();
    if slept < Duration::from_millis(10) {
        Duration::ZERO
    } else {
        slept
    }
}

/// How far `CLOCK_BOOTTIME` is ahead of `CLOCK_MONOTONIC`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn boottime_ahead() -> Duration {
    use rustix::time::{ClockId, clock_gettime};
    let nanos =
        |t: rustix::time::Timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
    let monotonic = nanos(clock_gettime(ClockId::Monotonic));
    let boottime = nanos(clock_gettime(ClockId::Boottime));
    u64::try_from(boottime - monotonic).map_or(Duration::ZERO, Duration::from_nanos)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn boottime_ahead() -> Duration {
    Duration::ZERO
}

#[cfg(test)]
thread_local! {
    /// A suspend the tests make believe in, on their thread.
    static SLEPT: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

impl ConnectOptions {
    /// Options with the defaults: 30 s call timeout, 10 s connect timeout, a ping every
    /// 30 s, reconnect backoff from 250 ms up to 5 s.
    pub fn new(
        endpoints: Vec<String>,
        ca_cert: impl Into<String>,
        username: impl Into<String>,
        password: Password,
    ) -> Self {
        Self {
            endpoints,
            ca_cert: ca_cert.into(),
            username: username.into(),
            password,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            backoff: Backoff::default(),
            fence: None,
        }
    }

    /// Builds the rustls configuration: only the given CA is trusted.
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(self.ca_cert.as_bytes()) {
            let cert = cert.map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(Error::Config(
                "CA certificate: no PEM certificate found".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Which API a connection logs in to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `/api`: controller facades (ModelManager, SecretBackends).
    Controller,
    /// `/model/<uuid>/api`: model facades (Secrets, ModelConfig).
    Model(String),
}

impl Target {
    fn path(&self) -> String {
        match self {
            Target::Controller => "/api".to_owned(),
            Target::Model(uuid) => format!("/model/{uuid}/api"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Controller => f.write_str("controller"),
            Target::Model(uuid) => write!(f, "model {uuid}"),
        }
    }
}

/// Counts of Juju calls sent, per `Facade.Method`.
#[derive(Debug, Default)]
pub struct CallStats {
    counts: Mutex<BTreeMap<CallKey, u64>>,
}

/// `(facade, method, outcome)` of counted calls.
pub type CallKey = (&'static str, &'static str, &'static str);

impl CallStats {
    fn record(&self, facade: &'static str, method: &'static str, outcome: &'static str) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((facade, method, outcome)).or_default() += 1;
        }
    }

    /// A copy of the counters, keyed `Facade.Method`, all outcomes together.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((facade, method, _), n) in self.by_outcome() {
            *out.entry(format!("{facade}.{method}")).or_default() += n;
        }
        out
    }

    /// A copy of the counters per facade, method and outcome (`ok`, `error`, `timeout`,
    /// `connection-lost`).
    pub fn by_outcome(&self) -> Vec<(CallKey, u64)> {
        self.counts
            .lock()
            .map(|c| c.iter().map(|(k, n)| (*k, *n)).collect())
            .unwrap_or_default()
    }

    /// Calls of one method so far.
    pub fn get(&self, facade: &str, method: &str) -> u64 {
        self.counts
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|((f, m, _), _)| *f == facade && *m == method)
                    .map(|(_, n)| *n)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// All calls so far.
    pub fn total(&self) -> u64 {
        self.counts.lock().map(|c| c.values().sum()).unwrap_or(0)
    }
}

/// Outcome of one request: the `response` member, or the top-level error.
type Reply = std::result::Result<Value, ApiError>;

/// One logged-in websocket.
pub(crate) struct Session {
    outgoing: mpsc::UnboundedSender<Message>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    closed: CancellationToken,
    facades: HashMap<String, Vec<u32>>,
    /// The controller's version from Login, e.g. `3.6.14`.
    pub server_version: String,
    /// When the connection last received a frame, in milliseconds after `opened`.
    heard_ms: AtomicU64,
    opened: Instant,
}

#[derive(Serialize)]
struct RequestFrame<'a, P: Serialize> {
    #[serde(rename = "request-id")]
    request_id: u64,
    #[serde(rename = "type")]
    facade: &'a str,
    version: u32,
    request: &'a str,
    params: &'a P,
}

impl Session {
    fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Notes that a frame arrived now.
    fn heard(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether a frame arrived within `interval` before now.
    fn heard_within(&self, interval: Duration) -> bool {
        let heard = Duration::from_millis(self.heard_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(heard) < interval
    }

    fn close(&self) {
        self.closed.cancel();
    }

    /// The highest version of `facade` that both sides speak.
    pub(crate) fn facade_version(
        &self,
        facade: &'static str,
        supported: &'static [u32],
    ) -> Result<u32> {
        self.facades
            .get(facade)
            .and_then(|offered| {
                supported
                    .iter()
                    .copied()
                    .filter(|v| offered.contains(v))
                    .max()
            })
            .ok_or(Error::FacadeUnavailable {
                facade,
                wanted: supported,
            })
    }

    /// Sends one request and waits for its reply until `deadline`.
    async fn request<P: Serialize>(
        &self,
        facade: &'static str,
        version: u32,
        method: &'static str,
        params: &P,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Value> {
        let request_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let text = serde_json::to_string(&RequestFrame {
            request_id,
            facade,
            version,
            request: method,
            params,
        })
        .map_err(|e| Error::Protocol {
            facade,
            method,
            detail: format!("cannot encode request: {e}"),
        })?;
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(request_id, tx);
        // Removes the entry however this call ends: answered, timed out, or dropped by
        // its caller mid-flight.
        let _pending = PendingGuard {
            session: self,
            request_id,
        };
        if self.is_closed() || self.outgoing.send(Message::text(text)).is_err() {
            return Err(Error::ConnectionLost { facade, method });
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout_at(deadline, rx).await;
        match outcome {
            Err(_) => Err(Error::Timeout {
                facade,
                method,
                after: timeout,
            }),
            Ok(Err(_)) => Err(Error::ConnectionLost { facade, method }),
            Ok(Ok(reply)) => {
                debug!(facade, method, request_id, elapsed = ?started.elapsed(), ok = reply.is_ok(), "juju call");
                reply.map_err(|source| Error::Api {
                    facade,
                    method,
                    source,
                })
            }
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Reply>>> {
        // A poisoned map only means another task panicked while holding it; the map
        // itself is still consistent (inserts and removes are single operations).
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Routes one incoming frame to the call waiting for it.
    fn dispatch(&self, text: &str) {
        let frame: wire::ResponseFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "ignoring a frame from Juju that is not a response");
                return;
            }
        };
        let Some(waiter) = self.lock_pending().remove(&frame.request_id) else {
            debug!(
                request_id = frame.request_id,
                "response to a call nobody waits for"
            );
            return;
        };
        let code = frame.error_code.unwrap_or_default();
        let message = frame.error.unwrap_or_default();
        let reply = if message.is_empty() && code.is_empty() {
            Ok(frame.response.unwrap_or(Value::Object(Default::default())))
        } else if code.is_empty() && message.starts_with("no such request ") {
            // Juju's own RPC client gives this code to codeless "no such request" errors.
            Err(ApiError::new("not implemented", message))
        } else {
            Err(ApiError::new(&code, message))
        };
        let _ = waiter.send(reply);
    }
}

/// Removes a call's entry from the pending map when the call ends.
struct PendingGuard<'a> {
    session: &'a Session,
    request_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.session.lock_pending().remove(&self.request_id);
    }
}

/// Why the last connection attempt failed; kept so calls can fail fast with it.
#[derive(Clone, Debug)]
enum Failure {
    Connect { endpoint: String, detail: String },
    Login { target: String, source: ApiError },
}

impl Failure {
    fn to_error(&self) -> Error {
        match self {
            Failure::Connect { endpoint, detail } => Error::Connect {
                endpoint: endpoint.clone(),
                detail: detail.clone(),
            },
            Failure::Login { target, source } => Error::Login {
                target: target.clone(),
                source: source.clone(),
            },
        }
    }
}

#[derive(Clone)]
enum State {
    Connecting,
    Ready(Arc<Session>),
    Failed(Failure),
    Closed,
}

struct Shared {
    /// Set when the supervisor gave up for good (login refused); the owner should open
    /// a new connection, which tries again.
    finished: std::sync::atomic::AtomicBool,
    options: ConnectOptions,
    tls: Arc<rustls::ClientConfig>,
    target: Target,
    state: watch::Sender<State>,
    stats: Arc<CallStats>,
}

/// Stops the supervisor when the last [`Connection`] clone is dropped.
struct Shutdown(CancellationToken);

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A self-healing connection to one Juju API target. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    _shutdown: Arc<Shutdown>,
}

impl Connection {
    /// Starts connecting to `target` in the background and returns at once.
    pub fn open(options: ConnectOptions, target: Target, stats: Arc<CallStats>) -> Result<Self> {
        if options.endpoints.is_empty() {
            return Err(Error::Config("no Juju controller endpoint given".into()));
        }
        for (name, d) in [
            ("call timeout", options.call_timeout),
            ("connect timeout", options.connect_timeout),
            ("ping interval", options.ping_interval),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
        }
        let tls = options.tls_config()?;
        let (state, _) = watch::channel(State::Connecting);
        let shared = Arc::new(Shared {
            finished: std::sync::atomic::AtomicBool::new(false),
            options,
            tls,
            target,
            state,
            stats,
        });
        let token = CancellationToken::new();
        tokio::spawn(supervise(shared.clone(), token.clone()));
        Ok(Self {
            shared,
            _shutdown: Arc::new(Shutdown(token)),
        })
    }

    /// True while the connection is logged in and usable.
    pub fn is_connected(&self) -> bool {
        matches!(*self.shared.state.borrow(), State::Ready(_))
    }

    /// True once the connection has stopped trying: its login was refused. Calls fail
    /// with that refusal; a new connection tries again.
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    /// The target this connection logs in to.
    pub fn target(&self) -> &Target {
        &self.shared.target
    }

    /// Waits for a live session until `deadline`.
    pub(crate) async fn session(&self, deadline: Instant) -> Result<Arc<Session>> {
        let mut rx = self.shared.state.subscribe();
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                State::Ready(session) if !session.is_closed() => return Ok(session),
                State::Failed(failure) => return Err(failure.to_error()),
                State::Closed => return Err(Error::Closed),
                State::Ready(_) | State::Connecting => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => {
                    let endpoint = self.shared.options.endpoints.join(",");
                    return Err(Error::Connect {
                        endpoint,
                        detail: "no connection within the call timeout".into(),
                    });
                }
            }
        }
    }

    /// Calls `facade.method` with the highest common version out of `versions` and
    /// decodes the `response` member as `R`.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        facade: &'static str,
        versions: &'static [u32],
        method: &'static str,
        params: &P,
    ) -> Result<R> {
        let timeout = self.shared.options.call_timeout;
        let deadline = deadline_after(timeout);
        let session = self.session(deadline).await?;
        let version = session.facade_version(facade, versions)?;
        // Checked last, just before the frame goes out.
        if let Some(fence) = &self.shared.options.fence
            && !fence.is_open()
        {
            return Err(Error::Fenced { facade, method });
        }
        let answer = session
            .request(facade, version, method, params, deadline, timeout)
            .await;
        self.shared
            .stats
            .record(facade, method, call_outcome(answer.as_ref().err()));
        let value = answer?;
        serde_json::from_value(value).map_err(|e| Error::Protocol {
            facade,
            method,
            detail: decode_failure(&e),
        })
    }

    /// The controller version reported at login, once connected.
    pub async fn server_version(&self) -> Result<String> {
        let deadline = deadline_after(self.shared.options.call_timeout);
        Ok(self.session(deadline).await?.server_version.clone())
    }
}

/// The outcome label of one call: whether Juju answered it, and how it failed if not.
fn call_outcome(error: Option<&Error>) -> &'static str {
    match error {
        None => "ok",
        Some(Error::Timeout { .. }) => "timeout",
        Some(Error::ConnectionLost { .. }) => "connection-lost",
        Some(_) => "error",
    }
}

/// Describes a decoding failure without quoting the data: serde's messages can contain
/// the value that did not fit, and answers carry secret content.
pub(crate) fn decode_failure(e: &serde_json::Error) -> String {
    format!(
        "answer does not have the expected shape ({:?} error)",
        e.classify()
    )
}

/// `now + d`, saturating far in the future instead of overflowing.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

async fn supervise(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut attempt: u32 = 0;
    loop {
        if attempt > 0 {
            let delay = shared.options.backoff.delay(attempt - 1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => break,
            }
        }
        // Calls made while this attempt runs wait for its outcome.
        shared.state.send_if_modified(|state| match state {
            State::Failed(Failure::Connect { .. }) => {
                *state = State::Connecting;
                true
            }
            _ => false,
        });
        let established = tokio::select! {
            r = establish(&shared) => r,
            () = shutdown.cancelled() => break,
        };
        match established {
            Ok(session) => {
                info!(target_api = %shared.target, server_version = %session.server_version, "connected to Juju");
                let since = Instant::now();
                shared.state.send_replace(State::Ready(session.clone()));
                tokio::select! {
                    () = session.closed.cancelled() => {}
                    () = shutdown.cancelled() => {
                        session.close();
                        break;
                    }
                }
                warn!(target_api = %shared.target, "connection to Juju lost; reconnecting");
                shared.state.send_replace(State::Connecting);
                // A session that lived a while resets the backoff; one that died at
                // once (a flapping server) keeps backing off.
                attempt = if since.elapsed() > shared.options.backoff.max {
                    0
                } else {
                    attempt + 1
                };
            }
            Err(failure @ Failure::Login { .. }) => {
                // Wrong credentials, no access or an unknown model do not heal by
                // retrying the same login in the background; the next use opens a new
                // connection and tries again.
                warn!(target_api = %shared.target, error = %failure.to_error(), "Juju refused the login");
                shared.finished.store(true, Ordering::Release);
                shared.state.send_replace(State::Failed(failure));
                return;
            }
            Err(failure) => {
                warn!(target_api = %shared.target, error = %failure.to_error(), "cannot connect to Juju; will retry");
                shared.state.send_replace(State::Failed(failure));
                attempt = attempt.saturating_add(1);
            }
        }
    }
    if let State::Ready(session) = &*shared.state.borrow() {
        session.close();
    }
    shared.state.send_replace(State::Closed);
}

/// Dials the endpoints in order and logs in on the first that answers.
async fn establish(shared: &Shared) -> std::result::Result<Arc<Session>, Failure> {
    let mut last = None;
    for endpoint in &shared.options.endpoints {
        let attempt = tokio::time::timeout(
            shared.options.connect_timeout,
            dial_and_login(shared, endpoint),
        )
        .await;
        match attempt {
            Ok(Ok(session)) => return Ok(session),
            Ok(Err(failure @ Failure::Login { .. })) => return Err(failure),
            Ok(Err(failure)) => last = Some(failure),
            Err(_) => {
                last = Some(Failure::Connect {
                    endpoint: endpoint.clone(),
                    detail: format!("no answer within {:?}", shared.options.connect_timeout),
                })
            }
        }
    }
    Err(last.unwrap_or(Failure::Connect {
        endpoint: String::new(),
        detail: "no endpoint".into(),
    }))
}

/// Bytes each connection reads into at a time (tungstenite's default is 128 KiB).
/// A client keeps one connection per model it writes: at 200 models the default held
/// 25 MiB of read buffers (the largest single item in the operator's heap profile at
/// 10,000 secrets over 50 models); a larger frame still arrives whole, in more reads.
pub const READ_BUFFER_SIZE: usize = 16 * 1024;

fn websocket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
}

/// The websocket at `path` on `endpoint`, over TLS trusting `tls`'s roots only (the
/// server must present the name Juju gives its API certificates). Errors say which
/// step failed: `tcp: …`, `tls: …` or `websocket: …`.
pub async fn dial(
    tls: Arc<rustls::ClientConfig>,
    endpoint: &str,
    path: &str,
) -> std::result::Result<WebSocketStream<TlsStream<TcpStream>>, String> {
    let tcp = TcpStream::connect(endpoint)
        .await
        .map_err(|e| format!("tcp: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let server_name = ServerName::try_from(JUJU_SERVER_NAME).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("wss://{endpoint}{path}"),
        tls,
        Some(websocket_config()),
    )
    .await
    .map_err(|e| format!("websocket: {e}"))?;
    Ok(ws)
}

async fn dial_and_login(
    shared: &Shared,
    endpoint: &str,
) -> std::result::Result<Arc<Session>, Failure> {
    let connect_failure = |detail: String| Failure::Connect {
        endpoint: endpoint.to_owned(),
        detail,
    };
    let ws = dial(shared.tls.clone(), endpoint, &shared.target.path())
        .await
        .map_err(connect_failure)?;

    let (mut sink, mut stream) = ws.split();
    let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<Message>();
    let closed = CancellationToken::new();
    let mut session = Session {
        outgoing,
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        closed: closed.clone(),
        facades: HashMap::new(),
        server_version: String::new(),
        heard_ms: AtomicU64::new(0),
        opened: Instant::now(),
    };

    // Login runs before the session is shared, on a private reader loop.
    let login = wire::LoginRequest {
        auth_tag: format!("user-{}", shared.options.username),
        credentials: shared.options.password.expose(),
        nonce: "",
        macaroons: None,
        bakery_version: 3,
        cli_args: "",
        user_data: "",
        client_version: CLIENT_VERSION,
    };
    let login_id = session.next_id.fetch_add(1, Ordering::Relaxed);
    let frame = serde_json::to_string(&RequestFrame {
        request_id: login_id,
        facade: "Admin",
        version: 3,
        request: "Login",
        params: &login,
    })
    .map_err(|e| connect_failure(e.to_string()))?;
    sink.send(Message::text(frame))
        .await
        .map_err(|e| connect_failure(format!("websocket: {e}")))?;
    let reply = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: wire::ResponseFrame = serde_json::from_str(&text)
                    .map_err(|e| connect_failure(format!("login answer: {e}")))?;
                if frame.request_id == login_id {
                    break frame;
                }
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(connect_failure("closed during login".into()));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(connect_failure(format!("websocket: {e}"))),
        }
    };
    let target = shared.target.to_string();
    let refused = reply.error.as_ref().is_some_and(|m| !m.is_empty());
    shared
        .stats
        .record("Admin", "Login", if refused { "error" } else { "ok" });
    if let Some(message) = reply.error.filter(|m| !m.is_empty()) {
        return Err(Failure::Login {
            target,
            source: ApiError::new(reply.error_code.as_deref().unwrap_or(""), message),
        });
    }
    let result: wire::LoginResult = serde_json::from_value(reply.response.unwrap_or_default())
        .map_err(|e| connect_failure(format!("login answer: {e}")))?;
    if result.discharge_required.is_some() || result.bakery_discharge_required.is_some() {
        return Err(Failure::Login {
            target,
            source: ApiError::new(
                "unauthorized access",
                "password login refused: the controller asked for a macaroon discharge",
            ),
        });
    }
    if let Target::Model(uuid) = &shared.target {
        let expected = format!("model-{uuid}");
        if result.model_tag.as_deref() != Some(expected.as_str()) {
            return Err(Failure::Login {
                target,
                source: ApiError::new("", "mismatched model tag in login result"),
            });
        }
    }
    session.facades = result
        .facades
        .into_iter()
        .map(|f| (f.name, f.versions))
        .collect();
    session.server_version = result.server_version;
    let session = Arc::new(session);

    // Writer: the only task that writes to the socket.
    let writer_closed = closed.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                msg = outgoing_rx.recv() => match msg {
                    Some(msg) => {
                        if sink.send(msg).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                () = writer_closed.cancelled() => break,
            }
        }
        let _ = sink.close().await;
        writer_closed.cancel();
    });

    // Reader: routes answers; when the socket ends, every waiting call fails.
    let reader_session = Arc::downgrade(&session);
    let reader_closed = closed.clone();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = reader_closed.cancelled() => break,
            };
            match next {
                Some(Ok(Message::Text(text))) => match reader_session.upgrade() {
                    Some(session) => {
                        session.heard();
                        session.dispatch(&text);
                    }
                    None => break,
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        reader_closed.cancel();
        if let Some(session) = reader_session.upgrade() {
            session.lock_pending().clear();
        }
    });

    // Keepalive: a ping that fails or times out drops the session.
    let pinger = Arc::downgrade(&session);
    let ping_interval = shared.options.ping_interval;
    let ping_timeout = shared.options.call_timeout;
    let stats = shared.stats.clone();
    let ping_closed = closed.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(deadline_after(ping_interval), ping_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = ping_closed.cancelled() => break,
            }
            let Some(session) = pinger.upgrade() else {
                break;
            };
            // Answers arrived within the interval: the connection is alive.
            if session.heard_within(ping_interval) {
                continue;
            }
            let Ok(version) = session.facade_version("Pinger", &[1]) else {
                continue;
            };
            let deadline = deadline_after(ping_timeout);
            let ping = session
                .request(
                    "Pinger",
                    version,
                    "Ping",
                    &wire::Empty {},
                    deadline,
                    ping_timeout,
                )
                .await;
            stats.record("Pinger", "Ping", call_outcome(ping.as_ref().err()));
            if let Err(e) = ping {
                warn!(error = %e, "keepalive ping failed; dropping the connection");
                session.close();
                break;
            }
        }
    });

    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspend_past_the_fence_closes_it() {
        // The machine sleeps 20 s while tokio's clock stands still (as CLOCK_MONOTONIC
        // does during a suspend): a fence open for another 10 s is closed on waking;
        // one opened after the wake counts from then.
        let fence = Fence::new(Instant::now() + Duration::from_secs(10));
        assert!(fence.is_open());
        SLEPT.set(Duration::from_secs(20));
        assert!(!fence.is_open(), "the fence ignored a 20 s suspend");
        fence.open_until(Instant::now() + Duration::from_secs(10));
        assert!(fence.is_open());
        // A short sleep within the fence's time leaves it open.
        SLEPT.set(Duration::from_secs(25));
        assert!(fence.is_open());
        SLEPT.set(Duration::ZERO);
    }

    #[test]
    fn the_clocks_read_one_after_the_other_are_no_suspend() {
        for _ in 0..1000 {
            assert_eq!(suspended(), Duration::ZERO);
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(4), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn password_is_redacted() {
        let options = ConnectOptions::new(
            vec!["127.0.0.1:1".into()],
            "",
            "admin",
            Password::new("s3cr3t-pw"),
        );
        assert!(!format!("{options:?}").contains("s3cr3t-pw"));
    }

    #[test]
    fn a_ca_that_is_not_pem_is_a_config_error() {
        let options = ConnectOptions::new(
            vec!["127.0.0.1:1".into()],
            "not a pem",
            "admin",
            Password::new("x"),
        );
        assert!(matches!(options.tls_config(), Err(Error::Config(_))));
    }
}
