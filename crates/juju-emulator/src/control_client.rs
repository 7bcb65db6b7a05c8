//! A client for the control facade, for benchmarks and tools written in Rust.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::ConnectionInfo;
use juju_client::transport::dial;
use juju_client::{ConnectOptions, Password};

/// Sends one control request (`Emulator.<request>` with `params`) to the emulator that
/// wrote `info` and returns its `response`, or the error it answered, within 30 s.
pub async fn control_call(
    info: &ConnectionInfo,
    request: &str,
    params: Value,
) -> Result<Value, String> {
    tokio::time::timeout(Duration::from_secs(30), call(info, request, params))
        .await
        .map_err(|_| format!("control {request}: no answer within 30 s"))?
}

async fn call(info: &ConnectionInfo, request: &str, params: Value) -> Result<Value, String> {
    // Only the CA matters here: the control path takes no login.
    let options = ConnectOptions::new(
        vec![info.endpoint.clone()],
        info.ca_cert.clone(),
        "",
        Password::new(""),
    );
    let tls = options.tls_config().map_err(|e| e.to_string())?;
    let mut ws = dial(tls, &info.endpoint, "/emulator/control").await?;
    let frame = json!({"request-id": 1, "type": "Emulator", "version": 1,
        "request": request, "params": params});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg.map_err(|e| format!("receive: {e}"))? else {
            continue;
        };
        let mut reply: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let _ = ws.close(None).await;
        if let Some(err) = reply.get("error").and_then(Value::as_str) {
            return Err(format!("control {request}: {err}"));
        }
        return Ok(reply["response"].take());
    }
    Err(format!(
        "control {request}: connection closed without an answer"
    ))
}
