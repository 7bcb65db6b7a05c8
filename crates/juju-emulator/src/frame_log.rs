//! The frame log: one JSON line per RPC call, for schema validation of the traffic.
//!
//! Each line is
//! `{"conn":"controller"|"model","type":F,"version":V,"request":M,"params":P,"response":R,"error"?:E,"error-code"?:C}`.
//! `params` is the request's `params` member exactly as received (`{}` when the request had
//! none); `response` is the response frame's `response` member (`{}` on errors).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use super::EmulatorError;
use super::rpc::{Request, RpcError};

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct FrameLog {
    file: Mutex<std::fs::File>,
    path: PathBuf,
}

#[derive(Serialize)]
struct Line<'a> {
    conn: &'a str,
    #[serde(rename = "type")]
    facade: &'a str,
    version: i64,
    request: &'a str,
    params: &'a Value,
    response: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(rename = "error-code", skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
}

impl FrameLog {
    /// Opens (creating or appending to) the log file.
    pub fn open(path: &Path) -> Result<Self, EmulatorError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| EmulatorError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| EmulatorError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            file: Mutex::new(file),
            path: path.to_owned(),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the record of one call.
    pub fn record(&self, conn: &str, request: &Request, outcome: &Result<Value, RpcError>) {
        let empty = super::rpc::empty();
        let params = request.params.as_ref().unwrap_or(&empty);
        let (response, error, code) = match outcome {
            Ok(v) => (v, None, None),
            Err(e) => (
                &empty,
                Some(e.message.as_str()),
                Some(e.code.as_str()).filter(|c| !c.is_empty()),
            ),
        };
        let line = Line {
            conn,
            facade: &request.facade,
            version: request.version,
            request: &request.method,
            params,
            response,
            error,
            error_code: code,
        };
        let Ok(mut text) = serde_json::to_vec(&line) else {
            return;
        };
        text.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&text) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write frame log");
        }
    }
}
