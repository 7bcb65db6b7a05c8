//! Listener, TLS and websocket handling, and the per-connection request loop.
//!
//! Each connection has one reader loop and one writer task. The reader parses a frame,
//! decides synchronously which root the call goes to (as Juju's RPC server binds a method
//! before it runs it), then runs the call in its own task, so pipelined requests are
//! answered concurrently and possibly out of order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as HttpRequest, Response as HttpResponse,
};
use tokio_tungstenite::tungstenite::http::StatusCode;

use super::facades;
use super::faults::Faults;
use super::frame_log::FrameLog;
use super::rpc::{self, Request, RpcError};
use super::state::{ModelAccess, State};

/// State shared by every connection of one emulator.
pub(crate) struct Shared {
    state: Mutex<State>,
    state_path: PathBuf,
    /// Set by a change, cleared when the state is written out.
    dirty: AtomicBool,
    /// Wakes the writer of `state.json` after a change.
    changed: Notify,
    /// Serialises writers of `state.json`, so an older snapshot never replaces a newer.
    saving: Mutex<()>,
    /// Fault switches.
    pub faults: Faults,
    calls: Mutex<HashMap<String, u64>>,
    /// Time spent serving calls, per `Facade.Method` (injected delays excluded).
    call_time: Mutex<HashMap<String, Duration>>,
    /// Optional frame log.
    pub frame_log: Option<FrameLog>,
    /// The listening port (reported in Login's `servers`).
    pub port: u16,
}

impl Shared {
    pub(crate) fn new(
        state: State,
        state_path: PathBuf,
        faults: Faults,
        frame_log: Option<FrameLog>,
        port: u16,
    ) -> Self {
        Self {
            state: Mutex::new(state),
            state_path,
            dirty: AtomicBool::new(false),
            changed: Notify::new(),
            saving: Mutex::new(()),
            faults,
            calls: Mutex::default(),
            call_time: Mutex::default(),
            frame_log,
            port,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the state; [`persist`] writes it out soon after.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let out = f(&mut self.lock());
        self.dirty.store(true, Ordering::Release);
        self.changed.notify_one();
        out
    }

    /// Writes the state out now if it changed since it was last written.
    pub(crate) fn flush(&self) {
        let _saving = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let text = match self.lock().to_json() {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, "cannot persist emulator state");
                return;
            }
        };
        if let Err(e) = super::state::write_private_atomically(&self.state_path, &text) {
            tracing::warn!(error = %e, "cannot persist emulator state");
        }
    }

    fn count(&self, facade: &str, method: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        *calls.entry(format!("{facade}.{method}")).or_default() += 1;
    }

    /// Calls received so far for `facade.method`.
    pub(crate) fn call_count(&self, facade: &str, method: &str) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .get(&format!("{facade}.{method}"))
            .copied()
            .unwrap_or(0)
    }

    /// All call counts, keyed `Facade.Method`.
    pub(crate) fn call_counts(&self) -> HashMap<String, u64> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn add_time(&self, facade: &str, method: &str, spent: Duration) {
        let mut times = self.call_time.lock().unwrap_or_else(|e| e.into_inner());
        *times.entry(format!("{facade}.{method}")).or_default() += spent;
    }

    /// Seconds spent serving calls so far, keyed `Facade.Method`: from the frame's
    /// arrival to its encoded response, injected delays excluded. A long poll
    /// (`AllWatcher.Next`) counts its wait.
    pub(crate) fn call_seconds(&self) -> HashMap<String, f64> {
        let times = self.call_time.lock().unwrap_or_else(|e| e.into_inner());
        times
            .iter()
            .map(|(k, d)| (k.clone(), d.as_secs_f64()))
            .collect()
    }
}

/// What a websocket path leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnKind {
    /// `/api` or `/`.
    Controller,
    /// `/model/<uuid>/api` for a known model.
    Model(String),
    /// `/model/<uuid>/api` for an unknown UUID: every call fails.
    UnknownModel(String),
    /// `/emulator/control`.
    Control,
}

/// A logged-in user on a connection.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// User name.
    pub user: String,
    /// Controller superuser?
    pub superuser: bool,
    /// Access to the connection's model (model connections only).
    pub model_access: Option<ModelAccess>,
}

#[derive(Debug, Clone)]
pub(crate) enum LoginState {
    None,
    InProgress,
    Done(Session),
}

/// An AllWatcher on a connection.
pub(crate) struct Watcher {
    /// Whether the first `Next` was answered.
    pub started: bool,
    /// Set when the watcher is stopped.
    pub stopped: watch::Sender<bool>,
}

/// One websocket connection.
pub(crate) struct Conn {
    /// Shared emulator state.
    pub shared: Arc<Shared>,
    /// What the path selected.
    pub kind: ConnKind,
    /// Login progress.
    pub login: Mutex<LoginState>,
    /// AllWatchers by id.
    pub watchers: Mutex<HashMap<String, Watcher>>,
    /// Source of watcher ids.
    pub next_resource: AtomicU64,
    /// Becomes true when the connection closes.
    pub closed: watch::Receiver<bool>,
}

impl Conn {
    /// `"controller"` or `"model"`, as the frame log names connections.
    fn log_kind(&self) -> &'static str {
        match self.kind {
            ConnKind::Controller | ConnKind::Control => "controller",
            ConnKind::Model(_) | ConnKind::UnknownModel(_) => "model",
        }
    }

    pub(crate) fn login_state(&self) -> MutexGuard<'_, LoginState> {
        self.login.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the connection closes.
    pub(crate) async fn wait_closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }
}

/// Accepts connections until `shutdown` turns true, then closes them all.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let conn_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            _ = wait_true(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    conns.spawn(handle_tcp(tcp, peer, tls.clone(), shared.clone(), conn_shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
}

fn classify_path(path: &str, shared: &Shared) -> Option<ConnKind> {
    match path {
        "/api" | "/" | "" => return Some(ConnKind::Controller),
        "/emulator/control" => return Some(ConnKind::Control),
        _ => {}
    }
    let uuid = path.strip_prefix("/model/")?.strip_suffix("/api")?;
    if uuid.is_empty() || uuid.contains('/') {
        return None;
    }
    Some(if shared.read(|s| s.model(uuid).is_some()) {
        ConnKind::Model(uuid.to_owned())
    } else {
        ConnKind::UnknownModel(uuid.to_owned())
    })
}

fn reject(status: StatusCode, text: &str) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(text.to_owned()));
    *resp.status_mut() = status;
    resp
}

// The handshake callback's error type is fixed by tungstenite.
#[allow(clippy::result_large_err)]
async fn handle_tcp(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls_stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let mut kind = None;
    let callback = |req: &HttpRequest, resp: HttpResponse| {
        let path = req.uri().path();
        match classify_path(path, &shared) {
            Some(ConnKind::Control) if !peer.ip().is_loopback() => {
                Err(reject(StatusCode::FORBIDDEN, "control is loopback only"))
            }
            Some(k) => {
                kind = Some(k);
                Ok(resp)
            }
            None => Err(reject(StatusCode::NOT_FOUND, "not found")),
        }
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let ws = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::accept_hdr_async_with_config(tls_stream, callback, Some(config)),
    )
    .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "websocket handshake failed");
            return;
        }
        Err(_) => return,
    };
    let Some(kind) = kind else { return };
    tracing::debug!(%peer, ?kind, "connection opened");
    run_connection(ws, kind, shared, shutdown).await;
    tracing::debug!(%peer, "connection closed");
}

async fn run_connection<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    kind: ConnKind,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let is_close = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || is_close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (closed_tx, closed_rx) = watch::channel(false);
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        kind,
        login: Mutex::new(LoginState::None),
        watchers: Mutex::default(),
        next_resource: AtomicU64::new(1),
        closed: closed_rx,
    });
    let mut drop_rx = shared.faults.drop_signal();
    let droppable = conn.kind != ConnKind::Control;
    let mut server_side_close = false;
    loop {
        tokio::select! {
            changed = drop_rx.changed(), if droppable => {
                if changed.is_ok() {
                    server_side_close = true;
                    break;
                }
            }
            _ = wait_true(&mut shutdown) => {
                server_side_close = true;
                break;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if !handle_frame(&conn, &tx, text.as_str()) {
                        break;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let Ok(text) = std::str::from_utf8(&bytes) else { break };
                    if !handle_frame(&conn, &tx, text) {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = closed_tx.send(true);
    if server_side_close {
        let _ = tx.send(Message::Close(None));
    }
    drop(tx);
    drop(stream);
    if server_side_close {
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    } else {
        // Replies still in flight are written if the peer is still reading.
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }
}

/// Handles one text frame; returns false when the connection must close (unparseable
/// frame, as Juju's codec gives up on the connection).
fn handle_frame(conn: &Arc<Conn>, tx: &mpsc::UnboundedSender<Message>, text: &str) -> bool {
    let arrived = Instant::now();
    let req = match Request::parse(text) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "unparseable request frame; closing connection");
            return false;
        }
    };
    let shared = &conn.shared;
    let control = conn.kind == ConnKind::Control;
    let decided: Result<facades::Route, RpcError> = if control {
        facades::route(conn, &req)
    } else {
        shared.count(&req.facade, &req.method);
        match shared.faults.take_failure(&req.facade, &req.method) {
            Some(e) => Err(e),
            None => facades::route(conn, &req),
        }
    };
    let conn = conn.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        let mut delay = Duration::ZERO;
        if !control {
            delay = conn.shared.faults.delay_for(&req.facade, &req.method);
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = conn.wait_closed() => return,
                }
            }
        }
        let outcome: Result<Value, RpcError> = match decided {
            Err(e) => Err(e),
            Ok(route) => facades::execute(&conn, route, &req).await,
        };
        if !control {
            let hold = conn
                .shared
                .faults
                .answer_delay_for(&req.facade, &req.method);
            if !hold.is_zero() {
                delay += hold;
                tokio::select! {
                    _ = tokio::time::sleep(hold) => {}
                    _ = conn.wait_closed() => return,
                }
            }
        }
        if !control && let Some(log) = &conn.shared.frame_log {
            log.record(conn.log_kind(), &req, &outcome);
        }
        let text = rpc::encode_response(req.request_id, &outcome);
        if !control {
            let spent = arrived.elapsed().saturating_sub(delay);
            conn.shared.add_time(&req.facade, &req.method, spent);
        }
        let _ = tx.send(Message::Text(text.into()));
    });
    true
}

/// How long after a change `state.json` is written: a burst of changes is written once.
pub(crate) const PERSIST_DELAY: Duration = Duration::from_millis(500);

/// Writes `state.json` after changes, at most once per [`PERSIST_DELAY`], until shutdown
/// (which writes it a last time).
pub(crate) async fn persist(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = shared.changed.notified() => {}
            () = wait_true(&mut shutdown) => break,
        }
        tokio::select! {
            () = tokio::time::sleep(PERSIST_DELAY) => {}
            () = wait_true(&mut shutdown) => break,
        }
        let writer = shared.clone();
        let _ = tokio::task::spawn_blocking(move || writer.flush()).await;
    }
    shared.flush();
}

/// Waits until a boolean watch turns true (or its sender is gone).
pub(crate) async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
