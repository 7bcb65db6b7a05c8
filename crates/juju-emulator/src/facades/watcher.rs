//! Client.WatchAll and the AllWatcher facade.
//!
//! The emulator has no model entities to report: the first `Next` answers with no deltas,
//! later ones block until the watcher is stopped or the connection closes, as a real
//! controller holds `Next` until something changes.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::rpc::{CODE_NOT_FOUND, Request, RpcError, empty};
use crate::server::{Conn, Watcher};

fn unknown_watcher() -> RpcError {
    RpcError::new("unknown watcher id", CODE_NOT_FOUND)
}

/// `Client.WatchAll`: a new AllWatcher.
pub(super) fn watch_all(conn: &Conn) -> Result<Value, RpcError> {
    let id = conn
        .next_resource
        .fetch_add(1, Ordering::Relaxed)
        .to_string();
    let (stopped, _) = watch::channel(false);
    conn.watchers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            id.clone(),
            Watcher {
                started: false,
                stopped,
            },
        );
    Ok(json!({"watcher-id": id}))
}

/// `AllWatcher.Next`.
pub(super) async fn next(conn: &Conn, req: &Request) -> Result<Value, RpcError> {
    let mut stopped = {
        let mut watchers = conn.watchers.lock().unwrap_or_else(|e| e.into_inner());
        let w = watchers.get_mut(&req.id).ok_or_else(unknown_watcher)?;
        if *w.stopped.borrow() {
            return Err(stopped_error());
        }
        if !w.started {
            w.started = true;
            return Ok(json!({"deltas": []}));
        }
        w.stopped.subscribe()
    };
    tokio::select! {
        _ = crate::server::wait_true(&mut stopped) => Err(stopped_error()),
        _ = conn.wait_closed() => Err(stopped_error()),
    }
}

fn stopped_error() -> RpcError {
    RpcError::new("watcher was stopped", "stopped")
}

/// `AllWatcher.Stop`.
pub(super) fn stop(conn: &Conn, req: &Request) -> Result<Value, RpcError> {
    let mut watchers = conn.watchers.lock().unwrap_or_else(|e| e.into_inner());
    let w = watchers.remove(&req.id).ok_or_else(unknown_watcher)?;
    let _ = w.stopped.send(true);
    Ok(empty())
}
