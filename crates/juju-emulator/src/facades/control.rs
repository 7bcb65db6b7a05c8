//! The `Emulator` control facade served on `/emulator/control` (loopback only, no login).

use std::time::Duration;

use serde_json::{Value, json};

use crate::rpc::{Request, RpcError, empty};
use crate::server::Conn;

/// Methods of the control facade.
pub(super) const METHODS: &[&str] = &[
    "AddApplication",
    "CallCounts",
    "CallTimes",
    "ContentTimes",
    "DropConnections",
    "FailNext",
    "SetBackendReachable",
    "SetDelay",
    "SetDrainDelay",
];

/// Runs one control request.
pub(super) fn handle(conn: &Conn, req: &Request) -> Result<Value, RpcError> {
    let p = req.params()?;
    let faults = &conn.shared.faults;
    match req.method.as_str() {
        "DropConnections" => {
            faults.drop_connections();
            Ok(empty())
        }
        "SetDelay" => {
            let ms = p.opt_i64("milliseconds")?.unwrap_or(0).max(0);
            let facade = p.opt_str("facade")?.filter(|s| !s.is_empty());
            let method = p.opt_str("method")?.filter(|s| !s.is_empty());
            faults.set_delay_for(
                facade.as_deref(),
                method.as_deref(),
                Duration::from_millis(ms.unsigned_abs()),
            );
            Ok(empty())
        }
        "SetDrainDelay" => {
            let ms = p.opt_i64("milliseconds")?.unwrap_or(0).max(0);
            faults.set_drain_delay(Duration::from_millis(ms.unsigned_abs()));
            Ok(empty())
        }
        "FailNext" => {
            let facade = p.str("facade")?;
            let method = p.str("method")?;
            if facade.is_empty() || method.is_empty() {
                return Err(RpcError::not_valid("facade and method not valid"));
            }
            let count = p.opt_i64("count")?.unwrap_or(1).max(0);
            faults.fail_next(
                &facade,
                &method,
                count.unsigned_abs(),
                &p.str("code")?,
                &p.str("message")?,
            );
            Ok(empty())
        }
        "SetBackendReachable" => {
            let name = p.str("name")?;
            faults.set_backend_reachable(&name, p.opt_bool("reachable")?.unwrap_or(true));
            Ok(empty())
        }
        "AddApplication" => {
            let uuid = p.str("model-uuid")?;
            let app = p.str("application")?;
            if app.is_empty() {
                return Err(RpcError::not_valid("empty application name not valid"));
            }
            crate::add_application_to(&conn.shared, &uuid, &app)
        }
        "CallCounts" => Ok(json!(conn.shared.call_counts())),
        "CallTimes" => Ok(json!(conn.shared.call_seconds())),
        // Per model UUID, per secret label (the ID when it has none): when the emulator
        // stored the newest revision's content, in ms since the Unix epoch.
        "ContentTimes" => Ok(conn.shared.read(|state| {
            let models: serde_json::Map<String, Value> = state
                .models
                .iter()
                .map(|m| {
                    let times: serde_json::Map<String, Value> = m
                        .secrets
                        .iter()
                        .filter_map(|s| {
                            let newest = s.revisions.iter().max_by_key(|r| r.revision)?;
                            let key = s.label.clone().unwrap_or_else(|| s.id.clone());
                            Some((key, json!(newest.written_ms)))
                        })
                        .collect();
                    (m.uuid.clone(), Value::Object(times))
                })
                .collect();
            Value::Object(models)
        })),
        other => Err(RpcError::plain(format!(
            "no such request - method Emulator(1).{other} is not implemented"
        ))),
    }
}
